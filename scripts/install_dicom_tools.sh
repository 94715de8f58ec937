#!/usr/bin/env bash
# Install Debian's DICOM tools used by the hospital-integration tests: orthanc + orthanc-dicomweb (a real PACS
# the tests start on free loopback ports) and dicom3tools (dciodvfy validates every DICOM object we write).
# Idempotent and best-effort: those tests skip with a reason when a tool is absent. Needs root (or sudo).
set -euo pipefail

missing=()
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
if [ ${#missing[@]} -eq 0 ]; then
    echo "DICOM tools already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_dicom_tools.sh: need root (or sudo) to apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# the package starts a system Orthanc where services run; the tests start their own on free ports
$SUDO service orthanc stop >/dev/null 2>&1 || true
echo "installed: ${missing[*]}"

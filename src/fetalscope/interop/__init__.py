"""DICOM and FHIR interoperability: results as objects that join the study, and a DICOM node."""

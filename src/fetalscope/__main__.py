"""`python -m fetalscope` runs the command line."""

from fetalscope.cli import app

if __name__ == "__main__":
    app()

# The examples import the SDK from this checkout (an author's project installs it instead).
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "guest-sdk" / "python"))

"""Run cnnbuild from a checkout: `python cli.py check specs/lenet5.yaml`."""
import sys

from cnnbuild.cli import main

sys.exit(main())

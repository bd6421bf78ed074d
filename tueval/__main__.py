"""``python -m tueval`` (and ``accelerate launch -m tueval``): the command line."""
import sys

from .cli import main

sys.exit(main())

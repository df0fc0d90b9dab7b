"""An implementation module that fails to import (for the 'unavailable' status)."""

raise ImportError("simulated: this implementation's framework fails to import")

"""``python -m zfitlite`` runs the demo."""

from .demo import main

raise SystemExit(main())

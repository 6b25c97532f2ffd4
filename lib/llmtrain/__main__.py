"""`python -m llmtrain`: the command line (see llmtrain.course.cli)."""

from .course.cli import main

raise SystemExit(main())

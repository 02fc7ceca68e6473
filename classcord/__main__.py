from classcord.cli import main

raise SystemExit(main())

from mailgent_mcp.cli import main

raise SystemExit(main())

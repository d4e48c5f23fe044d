"""The `calhub` command: embedded mode, one service in distributed mode, admin and EDI tools."""

"""One module per ``edgekd`` subcommand: argument parsing and printing only; the work is elsewhere."""

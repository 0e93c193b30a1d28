from pgprep.cli import main

main()

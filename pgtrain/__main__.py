from pgtrain.cli import main

main()

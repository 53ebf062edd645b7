from diffrec_cli.cli.app import main

main()

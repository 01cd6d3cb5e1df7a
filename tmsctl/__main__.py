from tmsctl.cli.main import main

main()

from factflow_storage.cli.main import main

main()

from factflow_storage.cli.entry import main

main()

from daozhang.cli.main import main

main()

from gemflow.cli import main

main()

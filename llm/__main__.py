from llm.cli import main

main()

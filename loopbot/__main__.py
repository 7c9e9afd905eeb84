from loopbot.cli import main

main()

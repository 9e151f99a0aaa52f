from aigc_client.cli import main

main()

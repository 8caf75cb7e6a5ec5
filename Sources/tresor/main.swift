import TresorCLI

TresorCLI.main()

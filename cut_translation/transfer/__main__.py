from cut_translation.transfer.pipeline import main

main()

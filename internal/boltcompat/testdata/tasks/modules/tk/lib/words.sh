WORD=from-lib

#!/bin/bash
declare -A m=([a]=1)
echo "plain text from bash ${BASH_VERSINFO[0]} ${m[a]} $PT_word"

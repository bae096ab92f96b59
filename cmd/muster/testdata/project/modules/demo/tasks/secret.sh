#!/bin/sh
echo "the token is $PT_token and the user is $PT_user"
sleep "${PT_wait:-0}"

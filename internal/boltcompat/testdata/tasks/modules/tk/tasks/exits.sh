#!/bin/sh
echo 'plain text, not JSON'
exit 4

#!/bin/sh
echo '{"impl": "posix"}'

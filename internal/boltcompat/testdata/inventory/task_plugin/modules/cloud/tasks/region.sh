#!/bin/sh
echo '{"value": "eu-west-1"}'

#!/bin/sh
echo '{"value": "counted"}'

#!/bin/sh
echo '{"implementation": "sh"}'

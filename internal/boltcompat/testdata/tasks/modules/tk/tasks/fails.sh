#!/bin/sh
echo '{"_error": {"kind": "tk/not-ready", "msg": "the service is not ready", "details": {"retry_in": 30}}}'
exit 1

#!/bin/sh
echo '{"_error": {"kind": "demo/oops", "msg": "the widget is on fire", "details": {"widget": 7}}}'

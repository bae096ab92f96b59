#!/usr/bin/env python3
import json, os, sys
params = json.load(sys.stdin)
print(json.dumps({"items": params["items"], "has_env": "PT_items" in os.environ, "lang": "python"}))

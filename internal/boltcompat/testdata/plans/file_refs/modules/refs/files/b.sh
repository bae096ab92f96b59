#!/bin/sh
echo module-files

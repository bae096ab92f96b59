#!/bin/sh
echo module-files-short

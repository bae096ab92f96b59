#!/bin/sh
echo module-scripts

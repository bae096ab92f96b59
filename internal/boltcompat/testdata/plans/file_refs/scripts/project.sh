#!/bin/sh
echo project-relative

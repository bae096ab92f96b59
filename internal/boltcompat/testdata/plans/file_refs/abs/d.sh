#!/bin/sh
echo absolute

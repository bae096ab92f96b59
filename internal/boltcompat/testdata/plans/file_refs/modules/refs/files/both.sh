#!/bin/sh
echo module-wins

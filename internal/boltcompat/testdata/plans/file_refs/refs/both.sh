#!/bin/sh
echo project-loses

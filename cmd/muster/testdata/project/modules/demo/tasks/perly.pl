#!/usr/bin/perl
use strict; use warnings;
local $/; my $in = <STDIN>;
my ($n) = $in =~ /"n":(\d+)/;
print "{\"doubled\": " . ($n * 2) . ", \"lang\": \"perl\"}\n";

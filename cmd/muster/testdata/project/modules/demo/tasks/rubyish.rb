#!/usr/bin/env ruby
# A task in the style of public Bolt modules' Ruby tasks: JSON on stdin,
# JSON on stdout, and a structured _error on failure.
require 'json'

params = JSON.parse(STDIN.read)
begin
  raise ArgumentError, "count must be positive" unless params['count'].positive?
  puts({ 'words' => params['words'].map(&:upcase) * params['count'], 'task' => params['_task'] }.to_json)
rescue ArgumentError => e
  puts({ '_error' => { 'kind' => 'demo/bad-count', 'msg' => e.message, 'details' => {} } }.to_json)
  exit 1
end

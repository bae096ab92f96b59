#!/usr/bin/env ruby
require 'json'
params = JSON.parse(STDIN.read)
puts({ 'implementation' => 'ruby', 'task' => params['_task'] }.to_json)

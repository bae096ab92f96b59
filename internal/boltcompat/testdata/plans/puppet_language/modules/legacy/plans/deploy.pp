# differs from Bolt: a plan in the Puppet language.
plan legacy::deploy(TargetSpec $targets) {
  run_command('uptime', $targets)
}

# A manifest that uses a class from the project's module path.
class { 'motd':
  path    => '@DIR@/motd.txt',
  message => 'applied by muster apply',
}

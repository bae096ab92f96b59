class motd (String $path, String $message) {
  file { $path:
    ensure  => file,
    content => "${message}\n",
  }
}

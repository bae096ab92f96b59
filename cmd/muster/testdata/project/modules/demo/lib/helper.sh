helper() { echo "from lib"; }

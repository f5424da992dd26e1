echo "from lib"

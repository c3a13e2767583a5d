# schemathesis (pinned) in .venv/, for integration/schemathesis_test.go: installed
# here so the test finds it ready (the test installs it too when run alone).
echo "scripts/schemathesis.sh --install-only"
scripts/schemathesis.sh --install-only

# The Java SDK's jar (its JUnit tests run in the junit suite), rebuilt only
# when sdk/java changed. Tests find it through $TASKWIRE_TEST_JAVA_SDK_JAR.
need javac openjdk-17-jdk-headless
need mvn maven
export TASKWIRE_TEST_JAVA_SDK_JAR="$PWD/sdk/java/target/taskwire-sdk.jar"
if [ ! -f "$TASKWIRE_TEST_JAVA_SDK_JAR" ] || [ "$(cat sdk/java/target/.sources.sha 2>/dev/null)" != "$(tree_hash sdk/java/pom.xml sdk/java/src/main)" ]; then
  echo "mvn -f sdk/java package -DskipTests"
  mvn_plain -q -f sdk/java -DskipTests package
  tree_hash sdk/java/pom.xml sdk/java/src/main >sdk/java/target/.sources.sha
fi
[ -f "$TASKWIRE_TEST_JAVA_SDK_JAR" ] || die "mvn built no $TASKWIRE_TEST_JAVA_SDK_JAR"
echo "$TASKWIRE_TEST_JAVA_SDK_JAR"

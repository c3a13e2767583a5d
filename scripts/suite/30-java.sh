suite junit mvn_plain -f sdk/java package

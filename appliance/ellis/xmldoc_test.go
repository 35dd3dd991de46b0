package ellis

import "testing"

// TestXMLRoundTrip writes documents mixing namespaces and reads them back
// unchanged, whatever prefixes their authors used.
func TestXMLRoundTrip(t *testing.T) {
	for _, doc := range []string{
		`<a:simservs xmlns:a="` + simservsNS + `" xmlns:b="` + policyNS + `"><a:x b:y="1"><b:ruleset/></a:x></a:simservs>`,
		`<simservs xmlns="` + simservsNS + `"><plain xmlns=""><inner xmlns="` + simservsNS + `">t &amp; u</inner></plain></simservs>`,
		`<ServiceProfile><InitialFilterCriteria><Priority>0</Priority></InitialFilterCriteria><Extra xmlns="urn:x" a="&quot;"/></ServiceProfile>`,
	} {
		root, err := parseXML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		def := ""
		if root.Name.Space == simservsNS {
			def = simservsNS
		}
		out := render(root, def, map[string]string{policyNS: "cp", simservsNS: "ss"}, true)
		again, err := parseXML(out)
		if err != nil {
			t.Fatalf("%s\nrendered as unreadable\n%s: %v", doc, out, err)
		}
		if again.canonical() != root.canonical() {
			t.Fatalf("%s\nrendered as\n%s\nwhich reads as %s", doc, out, again.canonical())
		}
	}
}

func TestReplaceKeepsOneInPlace(t *testing.T) {
	root := el("", "r", el("", "a").text("1"), el("", "b"), el("", "a").text("2"), el("", "c"))
	root.replace(el("", "a").text("new"))
	got := ""
	for _, c := range root.Children {
		got += c.Name.Local + c.Text + " "
	}
	if got != "anew b c " {
		t.Fatalf("children %q", got)
	}
	root.replace(el("", "d"))
	if last := root.Children[len(root.Children)-1]; last.Name.Local != "d" {
		t.Fatal("a new element is not appended")
	}
}

func TestCheckRoot(t *testing.T) {
	for doc, ok := range map[string]bool{
		`<ServiceProfile/>`:                       true,
		` <?xml version="1.0"?><ServiceProfile/>`: true,
		`<ServiceProfile/><ServiceProfile/>`:      false,
		`<ServiceProfile>`:                        false,
		``:                                        false,
		`x<ServiceProfile/>`:                      false,
		`<sp:ServiceProfile xmlns:sp="urn:x"/>`:   false,
	} {
		if err := checkRoot([]byte(doc), "", "ServiceProfile"); (err == nil) != ok {
			t.Errorf("checkRoot(%q) = %v", doc, err)
		}
	}
}

package report

import (
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// The report's sections, by id (the JSON's findings[].section and
// sections[].id, the HTML anchors), in the order they are printed.
const (
	SecFindings   = "findings"
	SecScope      = "scope"
	SecCoverage   = "coverage"
	SecTraffic    = "traffic"
	SecDenied     = "denied"
	SecPrivileged = "privileged"
	SecZones      = "zones"
	SecEgress     = "egress"
	SecIntegrity  = "integrity"
	SecControls   = "controls"
	SecSignoff    = "signoff"
	SecQueries    = "queries"
)

// Sections lists the section ids in print order; a section's number is
// its position from 1.
var Sections = []string{SecFindings, SecScope, SecCoverage, SecTraffic, SecDenied, SecPrivileged, SecZones, SecEgress,
	SecIntegrity, SecControls, SecSignoff, SecQueries}

// SectionNumber is the printed number of section id (0: unknown).
func SectionNumber(id string) int { return slices.Index(Sections, id) + 1 }

// Section is one section of the report and the controls it evidences.
type Section struct {
	ID       string   `json:"id"`
	Number   int      `json:"number"`
	Controls []string `json:"controls"`
}

// Control is one control of a regulation or standard and what the report
// evidences of it: the checks whose findings speak to it and the sections
// holding the evidence, what the flows show and what they do not.
type Control struct {
	ID        string `json:"id"`
	Framework Text   `json:"framework"`
	Title     Text   `json:"title"`
	// Evidences is what the archived flows show for the control.
	Evidences Text `json:"evidences"`
	// Limits is what they do not show: the evidence the control needs
	// from elsewhere.
	Limits   Text     `json:"does_not_evidence"`
	Checks   []string `json:"checks"`
	Sections []string `json:"sections"`
}

// ControlTable is the control mapping of a report.
type ControlTable struct{ Controls []Control }

// controlsOf are the ids of the controls mapped to check id.
func (ct *ControlTable) controlsOf(id string) []string {
	var out []string
	for _, c := range ct.Controls {
		if slices.Contains(c.Checks, id) {
			out = append(out, c.ID)
		}
	}
	return out
}

// sectionsOf is every section with the controls it evidences.
func (ct *ControlTable) sections() []Section {
	out := make([]Section, 0, len(Sections))
	for i, id := range Sections {
		s := Section{ID: id, Number: i + 1, Controls: []string{}}
		for _, c := range ct.Controls {
			if slices.Contains(c.Sections, id) {
				s.Controls = append(s.Controls, c.ID)
			}
		}
		out = append(out, s)
	}
	return out
}

// ControlsFile is the --controls YAML document: controls that extend the
// built-in table (a control with a built-in id replaces it), or replace it
// whole with replace: true.
//
//	replace: false
//	controls:
//	  - id: INTERNAL-NET-3
//	    framework: {en: "Internal policy", ko: "내부 정책"}
//	    title: {en: "...", ko: "..."}
//	    evidences: {en: "...", ko: "..."}
//	    does_not_evidence: {en: "...", ko: "..."}
//	    checks: [zone_sources]
//	    sections: [zones]
type ControlsFile struct {
	Replace  bool      `json:"replace,omitempty"`
	Controls []Control `json:"controls"`
}

// ParseControls parses a controls document and returns the table it makes
// with the built-in one.
func ParseControls(b []byte) (*ControlTable, error) {
	var f ControlsFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("report: controls: %w", err)
	}
	if len(f.Controls) == 0 {
		return nil, fmt.Errorf("report: controls: no controls defined")
	}
	seen := map[string]bool{}
	for i, c := range f.Controls {
		switch {
		case c.ID == "":
			return nil, fmt.Errorf("report: controls[%d]: id is empty", i)
		case seen[c.ID]:
			return nil, fmt.Errorf("report: controls[%d]: duplicate id %q", i, c.ID)
		case c.Title.En == "":
			return nil, fmt.Errorf("report: controls[%d] %q: title.en is empty", i, c.ID)
		case len(c.Checks) == 0 && len(c.Sections) == 0:
			return nil, fmt.Errorf("report: controls[%d] %q: neither checks nor sections", i, c.ID)
		}
		seen[c.ID] = true
		for _, k := range c.Checks {
			if !slices.Contains(Checks, k) {
				return nil, fmt.Errorf("report: controls[%d] %q: unknown check %q (one of %v)", i, c.ID, k, Checks)
			}
		}
		for _, s := range c.Sections {
			if !slices.Contains(Sections, s) {
				return nil, fmt.Errorf("report: controls[%d] %q: unknown section %q (one of %v)", i, c.ID, s, Sections)
			}
		}
		if c.Checks == nil {
			f.Controls[i].Checks = []string{}
		}
		if c.Sections == nil {
			f.Controls[i].Sections = []string{}
		}
	}
	if f.Replace {
		return &ControlTable{Controls: f.Controls}, nil
	}
	ct := &ControlTable{Controls: slices.Clone(BuiltinControls)}
	for _, c := range f.Controls {
		if i := slices.IndexFunc(ct.Controls, func(x Control) bool { return x.ID == c.ID }); i >= 0 {
			ct.Controls[i] = c
		} else {
			ct.Controls = append(ct.Controls, c)
		}
	}
	return ct, nil
}

var (
	efsr  = Text{"Korea: Regulation on Supervision of Electronic Financial Transactions", "전자금융감독규정"}
	pipa  = Text{"Korea: Standards for Ensuring the Safety of Personal Information", "개인정보의 안전성 확보조치 기준"}
	ismsp = Text{"Korea: ISMS-P certification criteria", "ISMS-P 인증기준"}
	pci   = Text{"PCI DSS v4.0.1", "PCI DSS v4.0.1"}
	iso   = Text{"ISO/IEC 27001:2022 Annex A", "ISO/IEC 27001:2022 부속서 A"}
)

// BuiltinControls is the control mapping the report uses unless --controls
// replaces it.
var BuiltinControls = []Control{
	{ID: "EFSR-15", Framework: efsr,
		Title: Text{"Art. 15: measures against hacking (separation of internal networks)", "제15조: 해킹 등 방지대책 (내부 통신망 분리)"},
		Evidences: Text{"Flows between and out of the network zones, by verdict: what crossed a boundary and what was stopped.",
			"망 구역 사이 및 외부로 나간 플로우와 그 판정: 경계를 넘은 것과 차단된 것."},
		Limits: Text{"Physical or logical separation of the networks themselves, and traffic Cilium does not see (hosts outside the cluster).",
			"망 분리 구성 자체와 Cilium이 관찰하지 않는 트래픽 (클러스터 밖 호스트)."},
		Checks: []string{CheckInternalOnlyZones, CheckZoneSources, CheckPrivilegedSources}, Sections: []string{SecZones, SecDenied, SecEgress}},
	{ID: "EFSR-18", Framework: efsr,
		Title: Text{"Art. 18: internet access records (internal and external IP) kept at least 1 year; networks separated by function",
			"제18조: 내부·외부 IP별 인터넷 접속 기록 1년 이상 보관, 업무 기능별 망 분리"},
		Evidences: Text{"Every flow to the internet with its source workload and IPs, kept in an archive whose retention, coverage and integrity the report checks.",
			"출발지 워크로드와 IP가 포함된 인터넷행 플로우 전체, 그리고 보고서가 보존 기간·커버리지·무결성을 검사하는 보관소."},
		Limits: Text{"User identity behind a workload, and web proxy or application logs of the content accessed.",
			"워크로드 뒤의 사용자 신원, 접속 내용에 대한 웹 프록시·애플리케이션 로그."},
		Checks: []string{CheckRetention, CheckCoverage, CheckInternalOnlyZones}, Sections: []string{SecEgress, SecCoverage}},
	{ID: "PIPA-SM-8", Framework: pipa,
		Title: Text{"Art. 8: access records kept, reviewed at least monthly and protected from alteration",
			"제8조: 접속기록의 보관 및 점검 (월 1회 이상 점검, 위·변조 방지)"},
		Evidences: Text{"A monthly review of network access to the systems, from records whose hashes, chain and signatures are verified.",
			"해시·체인·서명이 검증된 기록에서 만든 시스템 네트워크 접근의 월간 점검."},
		Limits: Text{"Flows do not replace the personal information system's access records (who processed which record, when): those come from the application.",
			"플로우는 개인정보처리시스템의 접속기록(누가 언제 어떤 정보를 처리했는지)을 대체하지 않음: 애플리케이션 기록이 필요."},
		Checks: []string{CheckIntegrity, CheckSignatures, CheckRetention, CheckCoverage}, Sections: []string{SecFindings, SecIntegrity, SecSignoff}},
	{ID: "ISMS-P-2.6.1", Framework: ismsp,
		Title:     Text{"2.6.1 Network access", "2.6.1 네트워크 접근"},
		Evidences: Text{"Flows into each sensitive zone by source and verdict.", "민감 구역별 유입 플로우의 출발지와 판정."},
		Limits:    Text{"The network design and its approval.", "네트워크 설계 및 그 승인."},
		Checks:    []string{CheckZoneSources, CheckPrivilegedSources}, Sections: []string{SecZones, SecPrivileged, SecDenied}},
	{ID: "ISMS-P-2.6.7", Framework: ismsp,
		Title:     Text{"2.6.7 Internet access control", "2.6.7 인터넷 접속 통제"},
		Evidences: Text{"Flows to the internet, and the internal-only zones' lack of them.", "인터넷행 플로우와 내부 전용 구역의 인터넷행 플로우 부재."},
		Limits:    Text{"Which users browse the internet, and content filtering.", "인터넷을 사용하는 사용자와 콘텐츠 필터링."},
		Checks:    []string{CheckInternalOnlyZones}, Sections: []string{SecEgress}},
	{ID: "ISMS-P-2.9.4", Framework: ismsp,
		Title:     Text{"2.9.4 Log and access record management", "2.9.4 로그 및 접속기록 관리"},
		Evidences: Text{"Collection coverage, losses with their causes, retention and integrity of the network records.", "네트워크 기록의 수집 커버리지, 원인이 기록된 유실, 보존 기간, 무결성."},
		Limits:    Text{"Logs of systems and applications other than the network flows.", "네트워크 플로우 외 시스템·애플리케이션 로그."},
		Checks:    []string{CheckCoverage, CheckGapsExplained, CheckLossesExplained, CheckIntegrity, CheckSignatures, CheckRetention}, Sections: []string{SecCoverage, SecIntegrity}},
	{ID: "ISMS-P-2.9.5", Framework: ismsp,
		Title:     Text{"2.9.5 Log and access record review", "2.9.5 로그 및 접속기록 점검"},
		Evidences: Text{"A monthly review of denied traffic, privileged paths and zone crossings, signed off.", "차단 트래픽, 특권 경로, 구역 간 통신의 월간 점검과 승인."},
		Limits:    Text{"Follow-up of what the review finds.", "점검 결과에 대한 후속 조치."},
		Checks:    []string{CheckPrivilegedSources, CheckZoneSources}, Sections: []string{SecFindings, SecDenied, SecPrivileged, SecSignoff}},
	{ID: "ISMS-P-2.9.6", Framework: ismsp,
		Title:     Text{"2.9.6 Time synchronisation", "2.9.6 시간 동기화"},
		Evidences: Text{"Flows are stamped by each node's clock, archived in UTC.", "플로우는 각 노드의 시계로 기록되어 UTC로 보관됨."},
		Limits:    Text{"That the nodes' clocks were synchronised: NTP evidence comes from the nodes.", "노드 시계의 동기화 여부: NTP 증적은 노드에서 확인."},
		Checks:    []string{}, Sections: []string{SecScope}},
	{ID: "PCI-DSS-10.2.1.6", Framework: pci,
		Title:     Text{"10.2.1.6 Starting, stopping or pausing of audit logs", "10.2.1.6 감사 로그의 시작, 중지, 일시 중지"},
		Evidences: Text{"Every minute each collector ran (stats rows), every gap with its cause, and each configuration change.", "각 수집기가 실행된 모든 분(통계 행), 원인이 기록된 모든 공백, 설정 변경."},
		Limits:    Text{"Audit logs of the cardholder data environment's systems.", "카드 소지자 데이터 환경 시스템의 감사 로그."},
		Checks:    []string{CheckGapsExplained, CheckConfigUnchanged}, Sections: []string{SecCoverage, SecScope}},
	{ID: "PCI-DSS-10.3.2", Framework: pci,
		Title:     Text{"10.3.2 Audit log files protected from modification", "10.3.2 감사 로그 파일의 변경 방지"},
		Evidences: Text{"Hashes and the manifest chain of every file, verified.", "모든 파일의 해시와 매니페스트 체인 검증."},
		Limits:    Text{"Access control of the storage.", "저장소 접근 통제."},
		Checks:    []string{CheckIntegrity, CheckSignatures}, Sections: []string{SecIntegrity}},
	{ID: "PCI-DSS-10.3.3", Framework: pci,
		Title:     Text{"10.3.3 Audit log files backed up to a central, hard-to-alter store", "10.3.3 변경이 어려운 중앙 저장소로의 감사 로그 백업"},
		Evidences: Text{"The archive roots the report read and their chain heads.", "보고서가 읽은 보관소 루트와 체인 헤드."},
		Limits:    Text{"The store's own protection (object lock, access policy).", "저장소 자체의 보호 (객체 잠금, 접근 정책)."},
		Checks:    []string{CheckIntegrity}, Sections: []string{SecIntegrity}},
	{ID: "PCI-DSS-10.3.4", Framework: pci,
		Title:     Text{"10.3.4 Change detection on audit logs", "10.3.4 감사 로그 변경 탐지"},
		Evidences: Text{"Every file of the month hashed against its manifest entry; signatures with --public-key.", "이 달의 모든 파일을 매니페스트 항목과 해시 비교; --public-key로 서명 검증."},
		Limits:    Text{"Detection between reports (run flowaudit verify more often).", "보고서 사이의 탐지 (flowaudit verify를 더 자주 실행)."},
		Checks:    []string{CheckIntegrity, CheckSignatures}, Sections: []string{SecIntegrity}},
	{ID: "PCI-DSS-10.4.1", Framework: pci,
		Title:     Text{"10.4.1 Audit logs reviewed", "10.4.1 감사 로그 검토"},
		Evidences: Text{"A monthly review of denied traffic and privileged paths.", "차단 트래픽과 특권 경로의 월간 검토."},
		Limits:    Text{"The daily review 10.4.1 requires: a monthly report does not replace it.", "10.4.1이 요구하는 일일 검토: 월간 보고서로 대체되지 않음."},
		Checks:    []string{CheckPrivilegedSources}, Sections: []string{SecDenied, SecPrivileged}},
	{ID: "PCI-DSS-10.5.1", Framework: pci,
		Title:     Text{"10.5.1 Audit log history retained at least 12 months", "10.5.1 감사 로그 12개월 이상 보존"},
		Evidences: Text{"The oldest flow the manifests vouch for, and each partition retention deleted.", "매니페스트가 보증하는 가장 오래된 플로우와 보존 정책이 삭제한 파티션."},
		Limits:    Text{"That the last three months are immediately available from the store.", "최근 3개월이 저장소에서 즉시 조회 가능한지 여부."},
		Checks:    []string{CheckRetention}, Sections: []string{SecIntegrity}},
	{ID: "PCI-DSS-10.6", Framework: pci,
		Title:     Text{"10.6 Time synchronisation", "10.6 시간 동기화"},
		Evidences: Text{"Flows are stamped by each node's clock, archived in UTC.", "플로우는 각 노드의 시계로 기록되어 UTC로 보관됨."},
		Limits:    Text{"That the nodes' clocks were synchronised.", "노드 시계의 동기화 여부."},
		Checks:    []string{}, Sections: []string{SecScope}},
	{ID: "PCI-DSS-10.7.2", Framework: pci,
		Title:     Text{"10.7.2 Failures of critical security control systems detected and addressed", "10.7.2 핵심 보안 통제 시스템 장애의 탐지와 대응"},
		Evidences: Text{"Collector downtime and losses per node and hour, each with its cause.", "노드·시간별 수집기 중단과 유실, 각 원인."},
		Limits:    Text{"The response to each failure.", "각 장애에 대한 대응."},
		Checks:    []string{CheckCoverage, CheckGapsExplained, CheckLossesExplained}, Sections: []string{SecCoverage}},
	{ID: "ISO27001-A.8.15", Framework: iso,
		Title:     Text{"A.8.15 Logging", "A.8.15 로깅"},
		Evidences: Text{"Network activity logged, kept, protected and its coverage measured.", "네트워크 활동의 기록, 보관, 보호와 커버리지 측정."},
		Limits:    Text{"Logs of user activities and exceptions in applications.", "애플리케이션의 사용자 활동·예외 로그."},
		Checks:    []string{CheckCoverage, CheckGapsExplained, CheckLossesExplained, CheckIntegrity, CheckSignatures, CheckRetention, CheckConfigUnchanged}, Sections: []string{SecCoverage, SecIntegrity}},
	{ID: "ISO27001-A.8.16", Framework: iso,
		Title:     Text{"A.8.16 Monitoring activities", "A.8.16 모니터링 활동"},
		Evidences: Text{"Denied traffic, privileged paths, new denied pairs and top talkers of the month.", "이 달의 차단 트래픽, 특권 경로, 신규 차단 쌍, 상위 통신."},
		Limits:    Text{"Real-time alerting.", "실시간 경보."},
		Checks:    []string{CheckPrivilegedSources, CheckZoneSources}, Sections: []string{SecDenied, SecPrivileged, SecEgress, SecTraffic}},
	{ID: "ISO27001-A.8.20", Framework: iso,
		Title:     Text{"A.8.20 Networks security", "A.8.20 네트워크 보안"},
		Evidences: Text{"What crossed the zones' boundaries, and what the policies stopped.", "구역 경계를 넘은 것과 정책이 차단한 것."},
		Limits:    Text{"The configuration of the network devices and policies.", "네트워크 장비와 정책의 구성."},
		Checks:    []string{CheckZoneSources}, Sections: []string{SecZones, SecDenied}},
	{ID: "ISO27001-A.8.22", Framework: iso,
		Title:     Text{"A.8.22 Segregation of networks", "A.8.22 네트워크 분리"},
		Evidences: Text{"Internal-only zones with no flow to the internet; sources not allowed into a zone.", "인터넷행 플로우가 없는 내부 전용 구역; 구역에 허용되지 않은 출발지."},
		Limits:    Text{"The segregation design itself.", "분리 설계 자체."},
		Checks:    []string{CheckInternalOnlyZones, CheckZoneSources}, Sections: []string{SecZones}},
}

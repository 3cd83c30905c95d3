package demo

import (
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/datasandbox/dsbx/datasets"
)

// Hangzhou's districts with their administrative division codes.
var districts = []struct{ name, code string }{
	{"上城区", "330102"}, {"拱墅区", "330105"}, {"西湖区", "330106"}, {"滨江区", "330108"},
	{"萧山区", "330109"}, {"余杭区", "330110"}, {"富阳区", "330111"}, {"临安区", "330112"},
	{"临平区", "330113"}, {"钱塘区", "330114"},
}

var surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
var given = []rune("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志强文博子涵浩然欣怡梓轩思远雨萱")

// idChecksum is the GB 11643 check character of the first 17 digits.
func idChecksum(id17 string) byte {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += int(id17[i]-'0') * w
	}
	return "10X98765432"[sum%11]
}

// writePopulation writes a household/population register of n residents.
func writePopulation(path string, n int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(1935, 1, 1, 0, 0, 0, 0, time.UTC)
	header := []string{"id_number", "name", "sex", "birth_date", "district", "household_size", "income"}
	return writeCSV(path, header, n, func() []string {
		// Districts differ in size, so some cells are small.
		d := districts[min(int(r.ExpFloat64()*3), len(districts)-1)]
		birth := start.AddDate(0, 0, r.IntN(365*70))
		sex := "F"
		seq := r.IntN(500) * 2
		if r.IntN(2) == 0 {
			sex = "M"
			seq++
		}
		id17 := fmt.Sprintf("%s%s%03d", d.code, birth.Format("20060102"), seq)
		name := string(surnames[r.IntN(len(surnames))]) + string(given[r.IntN(len(given))])
		if r.IntN(2) == 0 {
			name += string(given[r.IntN(len(given))])
		}
		income := int(math.Exp(r.NormFloat64()*0.6)*float64(40000+20000*r.IntN(3))) + 12000
		return []string{id17 + string(idChecksum(id17)), name, sex, birth.Format("2006-01-02"), d.name,
			strconv.Itoa(1 + r.IntN(6)), strconv.Itoa(income)}
	})
}

// writeCSV writes a header and n rows made by row to path.
func writeCSV(path string, header []string, n int, row func() []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(header)
	for i := 0; i < n; i++ {
		w.Write(row())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var industries = []string{"制造业", "批发和零售业", "信息传输、软件和信息技术服务业", "住宿和餐饮业", "建筑业", "交通运输、仓储和邮政业", "科学研究和技术服务业"}

// writeEnterprises writes an enterprise register of n firms.
func writeEnterprises(path string, n int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 2))
	header := []string{"credit_code", "name", "legal_representative", "district", "industry", "employees", "registered_capital", "founded"}
	return writeCSV(path, header, n, func() []string {
		d := districts[r.IntN(len(districts))]
		ind := industries[r.IntN(len(industries))]
		code := fmt.Sprintf("91%s%09d%c", d.code, r.IntN(1_000_000_000), "0123456789ABCDEFGHJKLMNPQRTUWXY"[r.IntN(31)])
		name := fmt.Sprintf("杭州%s%s有限公司", string(given[r.IntN(len(given))])+string(given[r.IntN(len(given))]), []string{"科技", "贸易", "实业", "餐饮", "建设", "物流", "信息"}[r.IntN(7)])
		rep := string(surnames[r.IntN(len(surnames))]) + string(given[r.IntN(len(given))])
		employees := int(r.ExpFloat64()*40) + 1
		capital := (r.IntN(500) + 1) * 10000
		return []string{code, name, rep, d.name, ind, strconv.Itoa(employees), strconv.Itoa(capital), strconv.Itoa(1990 + r.IntN(35))}
	})
}

func populationSpec() datasets.Spec {
	return datasets.Spec{
		Name: "population", Grade: datasets.GradeImportant, Open: datasets.OpenConditional,
		LegalBasis:  "《杭州市公共数据授权运营实施方案》: personal information is opened only under a data use agreement",
		Tags:        []string{"人口", "民政"},
		Keys:        []string{"id_number"},
		Title:       "户籍人口登记信息 (household/population register)",
		Description: "Residents registered in Hangzhou, one row per person (generated for the demo).",
		Agency:      "杭州市公安局 (Hangzhou Public Security Bureau)",
		Frequency:   "monthly",
		Fields: []datasets.Field{
			{Name: "id_number", Description: "居民身份证号码", Sensitivity: "personal-sensitive", Identifier: datasets.IdentifierDirect},
			{Name: "name", Description: "姓名", Sensitivity: "personal", Identifier: datasets.IdentifierDirect},
			{Name: "sex", Description: "性别", Sensitivity: "personal", Identifier: datasets.IdentifierQuasi},
			{Name: "birth_date", Description: "出生日期", Sensitivity: "personal", Identifier: datasets.IdentifierQuasi},
			{Name: "district", Description: "户籍所在区", Sensitivity: "internal", Identifier: datasets.IdentifierQuasi},
			{Name: "household_size", Description: "户内人数", Sensitivity: "internal", Identifier: datasets.IdentifierNone},
			{Name: "income", Description: "年收入(元)", Sensitivity: "sensitive", Identifier: datasets.IdentifierNone},
		},
	}
}

func enterpriseSpec() datasets.Spec {
	return datasets.Spec{
		Name: "enterprises", Grade: datasets.GradeGeneral, Open: datasets.OpenConditional,
		LegalBasis: "《浙江省公共数据条例》: registration data with personal fields is conditionally open",
		Tags:       []string{"企业", "市场监管"},
		Keys:       []string{"credit_code"},
		Title:      "企业登记信息 (enterprise register)",
		Agency:     "杭州市市场监督管理局 (Hangzhou Administration for Market Regulation)",
		Frequency:  "daily",
		Fields: []datasets.Field{
			{Name: "credit_code", Description: "统一社会信用代码", Sensitivity: "public", Identifier: datasets.IdentifierDirect},
			{Name: "name", Description: "企业名称", Sensitivity: "public", Identifier: datasets.IdentifierDirect},
			{Name: "legal_representative", Description: "法定代表人", Sensitivity: "personal", Identifier: datasets.IdentifierDirect},
			{Name: "district", Description: "注册地所在区", Sensitivity: "public", Identifier: datasets.IdentifierQuasi},
			{Name: "industry", Description: "国民经济行业门类", Sensitivity: "public", Identifier: datasets.IdentifierNone},
			{Name: "employees", Description: "从业人数", Sensitivity: "internal", Identifier: datasets.IdentifierNone},
			{Name: "registered_capital", Description: "注册资本(元)", Sensitivity: "public", Identifier: datasets.IdentifierNone},
			{Name: "founded", Description: "成立年份", Sensitivity: "public", Identifier: datasets.IdentifierNone},
		},
	}
}
